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
