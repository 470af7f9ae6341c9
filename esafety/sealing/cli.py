"""``esafety keys``: show, rotate, re-seal and retire the keys that seal records."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

__all__ = ["register"]

keys_app = typer.Typer(
    help="The keys that seal safeguarding records and two-step secrets (never shown).",
    no_args_is_help=True,
)

BatchOption = Annotated[
    int,
    typer.Option("--batch-size", min=1, max=100_000, help="Values re-sealed per transaction."),
]
RetireOption = Annotated[
    bool,
    typer.Option(
        "--retire-old",
        help="Then remove the old keys nothing is sealed with any more (back up the "
        "keyring first: old database backups need them).",
    ),
]


def _show_data(inst: Any) -> dict[str, Any]:
    from esafety.sealing import KeyringMissing, key_use

    keyring = inst.keys
    try:
        keys = keyring.held_keys()
        current = keyring.current().id
    except KeyringMissing:
        keys, current = (), None
    use = key_use(inst.db.engine, inst.data_dir)
    held = {key.id for key in keys}
    return {
        "source": keyring.source,
        "found": bool(keys),
        "keys": [
            {
                "id": key.id,
                "created": key.created.isoformat() if key.created else None,
                "current": key.id == current,
                "values": use.value_count(key.id),
                "files": use.files[key.id],
            }
            for key in keys
        ],
        "missing": [
            {"id": key_id, "values": use.value_count(key_id), "files": use.files[key_id]}
            for key_id in sorted(use.key_ids() - held)
        ],
        "damaged": use.damaged,
    }


@keys_app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where the keys are, each key's id, when it was made, which seals, and how much each
    one sealed. Exits 1 when records need a key the keyring does not hold."""
    from esafety.cli import console, installation

    data = _show_data(installation(check_keys=False))
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        console.print(f"Keys: {data['source']}", highlight=False, markup=False)
        if not data["found"]:
            console.print("No keyring found there.", highlight=False)
        for key in data["keys"]:
            console.print(
                f"  {key['id']}  made {key['created'] or '(in the setting)'}  "
                f"{'current' if key['current'] else 'old    '}  "
                f"{key['values']} sealed values, {key['files']} sealed files",
                highlight=False,
                markup=False,
            )
        for key in data["missing"]:
            console.print(
                f"  {key['id']}  MISSING: {key['values']} sealed values and {key['files']} "
                "sealed files need it; restore it from the backup of the keys",
                highlight=False,
                markup=False,
            )
        for item in data["damaged"]:
            console.print(f"  damaged (not an esafety envelope): {item}", markup=False)
    if data["missing"]:
        raise typer.Exit(1)


def _progress(place: str, count: int) -> None:
    typer.echo(f"  {place}: {count} re-sealed", err=True)


def _print_resealed(done: Any) -> None:
    typer.echo(
        f"Re-sealed {done.values} values and {done.files} files with key {done.key}"
        + (f" ({done.changed_meanwhile} changed meanwhile)" if done.changed_meanwhile else "")
        + "."
    )


def _retire(inst: Any) -> None:
    from esafety.sealing import retire_unused

    retired = retire_unused(inst)
    if retired.removed:
        typer.echo(f"Retired keys no longer used: {', '.join(retired.removed)}.")
    if retired.remove_from_setting:
        typer.echo(
            "Nothing is sealed with these keys any more; remove them from the setting "
            f"[security] keys: {', '.join(retired.remove_from_setting)}."
        )
    for key_id, count in retired.still_used.items():
        typer.echo(
            f"Kept key {key_id}: {count} values or files are still sealed with it; run "
            "`esafety keys reseal --retire-old`."
        )
    if not (retired.removed or retired.remove_from_setting or retired.still_used):
        typer.echo("No old keys to retire.")


@keys_app.command("rotate")
def rotate(retire_old: RetireOption = False, batch_size: BatchOption = 500) -> None:
    """Make a new key, re-seal every sealed value and file with it, and (with
    --retire-old) remove the old keys. Safe to stop: `esafety keys reseal` finishes."""
    from esafety.cli import installation
    from esafety.sealing import rotate as rotate_keys

    inst = installation()
    key, done = rotate_keys(inst, batch_size=batch_size, after_batch=_progress)
    typer.echo(f"New key {key.id} is now the current key.")
    _print_resealed(done)
    if retire_old:
        _retire(inst)
    else:
        typer.echo(
            "Old keys are kept. Back up the keyring, then `esafety keys retire` removes them."
        )


@keys_app.command("reseal")
def reseal(retire_old: RetireOption = False, batch_size: BatchOption = 500) -> None:
    """Re-seal what is still sealed with an older key (after a stopped rotation, or a new
    key put first in the [security] keys setting)."""
    from esafety.cli import installation
    from esafety.sealing import reseal as reseal_all

    inst = installation()
    _print_resealed(reseal_all(inst, batch_size=batch_size, after_batch=_progress))
    if retire_old:
        _retire(inst)


@keys_app.command("retire")
def retire() -> None:
    """Remove the old keys, after counting that nothing is sealed with them any more."""
    from esafety.cli import installation

    _retire(installation())


@keys_app.command("new")
def new() -> None:
    """Print a new key for the [security] keys setting (for keys kept in the setting)."""
    from esafety.sealing.keyring import new_key_entry

    print(new_key_entry())


def register(app: typer.Typer, _users_app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
