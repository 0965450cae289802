"""Stores for the small records: tokens, functions and builds."""

from __future__ import annotations

from typing import Any

from taskfn.models import BuildRecord, FunctionRecord, TokenRecord
from taskfn.stores.table import Page, Table, time_key


class TokenStore:
    """Tokens are found by the SHA-256 of their secret; the secret itself is never stored."""

    def __init__(self, table: Table):
        self.table = table

    def put(self, token_hash: str, record: TokenRecord) -> bool:
        return self.table.put_new(
            {"PK": f"TOKEN#{token_hash}", "SK": "TOKEN", **record.model_dump(mode="json")}
        )

    def get(self, token_hash: str) -> TokenRecord | None:
        item = self.table.get(f"TOKEN#{token_hash}", "TOKEN")
        return TokenRecord.model_validate(item) if item else None


class FunctionStore:
    def __init__(self, table: Table):
        self.table = table

    @staticmethod
    def _keys(record: FunctionRecord) -> dict[str, Any]:
        return {
            "PK": f"FUNC#{record.id}",
            "SK": "FUNC",
            "GSI1PK": f"OWNER#{record.owner}#FUNC",
            "GSI1SK": time_key(record.created_at, record.id),
        }

    def put_new(self, record: FunctionRecord) -> bool:
        return self.table.put_new({**self._keys(record), **record.model_dump(mode="json")})

    def get(self, function_id: str) -> FunctionRecord | None:
        item = self.table.get(f"FUNC#{function_id}", "FUNC")
        return FunctionRecord.model_validate(item) if item else None

    def list_by_owner(self, owner: str, *, limit: int, cursor: str | None) -> tuple[
        list[FunctionRecord], str | None
    ]:
        page: Page = self.table.query("GSI1", f"OWNER#{owner}#FUNC", limit=limit, cursor=cursor)
        return [FunctionRecord.model_validate(i) for i in page.items], page.cursor

    def delete(self, function_id: str, owner: str) -> bool:
        """Deletes only the owner's function: one conditional write, False otherwise."""
        return self.table.delete(
            f"FUNC#{function_id}", "FUNC", condition="#o = :o", names={"#o": "owner"},
            values={":o": owner},
        )

    def set_build(self, function_id: str, owner: str, build_id: str, code_key: str,
                  lambda_version: str = "") -> bool:
        """Point the function at new code, if it still exists and is the owner's."""
        ok, _ = self.table.update(
            f"FUNC#{function_id}",
            "FUNC",
            set_values={"build_id": build_id, "code_key": code_key,
                        "lambda_version": lambda_version},
            condition="attribute_exists(PK) AND #o = :c_o",
            condition_values={"o": owner},
            condition_names={"#o": "owner"},
        )
        return ok


class BuildStore:
    def __init__(self, table: Table):
        self.table = table

    def put(self, record: BuildRecord) -> None:
        self.table.put(
            {
                "PK": f"BUILD#{record.id}",
                "SK": "BUILD",
                "GSI1PK": f"OWNER#{record.owner}#BUILD",
                "GSI1SK": time_key(record.created_at, record.id),
                "GSI2PK": f"FUNC#{record.function_id}#BUILD",
                "GSI2SK": time_key(record.created_at, record.id),
                **record.model_dump(mode="json"),
            }
        )

    def get(self, build_id: str) -> BuildRecord | None:
        item = self.table.get(f"BUILD#{build_id}", "BUILD")
        return BuildRecord.model_validate(item) if item else None
