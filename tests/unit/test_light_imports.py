"""taskfn.powertools (one Powertools submodule without its package's __init__), each check in
a fresh interpreter, since the test process has imported everything already."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _fresh(code: str) -> None:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_http_resolver_comes_without_the_other_resolvers():
    _fresh("""
        import sys
        from taskfn.powertools import APIGatewayHttpResolver, Response
        assert "aws_lambda_powertools.event_handler.api_gateway" in sys.modules
        assert "aws_lambda_powertools.event_handler.appsync" not in sys.modules
        assert "aws_lambda_powertools.event_handler.bedrock_agent" not in sys.modules
        app = APIGatewayHttpResolver()
        assert Response(status_code=204).status_code == 204
    """)


def test_the_package_is_whole_when_asked_for_after():
    _fresh("""
        import taskfn.powertools as light
        from aws_lambda_powertools.event_handler import (
            APIGatewayHttpResolver, AppSyncResolver, Response)
        import aws_lambda_powertools.event_handler as package
        assert APIGatewayHttpResolver is light.APIGatewayHttpResolver
        assert Response is light.Response
        assert AppSyncResolver.__module__ == "aws_lambda_powertools.event_handler.appsync"
        assert "AppSyncResolver" in package.__all__
        assert "__getattr__" not in vars(package)
        try:
            package.NoSuchName
        except AttributeError:
            pass
        else:
            raise AssertionError("an unknown name must stay unknown")
    """)


def test_a_package_imported_before_is_left_as_it_is():
    _fresh("""
        import aws_lambda_powertools.event_handler as package
        from taskfn.powertools import APIGatewayHttpResolver, submodule
        assert package.APIGatewayHttpResolver is APIGatewayHttpResolver
        assert submodule("aws_lambda_powertools.event_handler", "api_gateway") is (
            package.api_gateway)
    """)


def test_a_thread_asking_while_the_package_initializes_waits_for_it():
    """Thread A runs the package's __init__ (held just before its last import); thread B asks
    the package for a name meanwhile: B waits and gets it, as with a plain import."""
    _fresh("""
        import sys, threading, time
        import taskfn.powertools  # registers the package unexecuted
        reached, go = threading.Event(), threading.Event()
        class Gate:
            def find_spec(self, name, path=None, target=None):
                if (name == "aws_lambda_powertools.event_handler.vpc_lattice"
                        and threading.current_thread().name == "A"):
                    reached.set(); go.wait(5)
                return None
        sys.meta_path.insert(0, Gate())
        def a():
            from aws_lambda_powertools.event_handler import AppSyncResolver  # noqa: F401
        results = {}
        def b():
            try:
                from aws_lambda_powertools.event_handler import VPCLatticeResolver  # noqa
                results["B"] = "ok"
            except Exception as error:
                results["B"] = repr(error)
        ta = threading.Thread(target=a, name="A"); ta.start()
        assert reached.wait(5)
        tb = threading.Thread(target=b, name="B"); tb.start()
        time.sleep(0.3); go.set(); ta.join(); tb.join()
        assert results["B"] == "ok", results
    """)


def test_an_init_that_fails_is_raised_and_tried_again_and_dir_runs_it():
    _fresh("""
        import sys
        import taskfn.powertools
        package = sys.modules["aws_lambda_powertools.event_handler"]
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name == "aws_lambda_powertools.event_handler.vpc_lattice":
                    raise ModuleNotFoundError("halted", name=name)
                return None
        refuse = Refuse()
        sys.meta_path.insert(0, refuse)
        try:
            package.AppSyncResolver
        except ModuleNotFoundError:
            pass
        else:
            raise AssertionError("the failure must reach the asker")
        sys.meta_path.remove(refuse)
        sys.modules.pop("aws_lambda_powertools.event_handler.vpc_lattice", None)
        # Tried again: the names after the failed import are there too.
        assert package.VPCLatticeResolver.__name__ == "VPCLatticeResolver"
        assert "__getattr__" not in vars(package) and "__dir__" not in vars(package)
    """)
    _fresh("""
        import sys
        import taskfn.powertools
        package = sys.modules["aws_lambda_powertools.event_handler"]
        assert "AppSyncResolver" in dir(package)  # dir() runs the package's __init__
    """)
