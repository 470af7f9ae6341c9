"""``esafety filter ...`` end to end, on both databases; updates from a loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from esafety.filtering.store import ListStore
from tests.directory.school_setup import acting, add_pupil, new_school


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _lists(cli) -> dict[str, dict[str, object]]:
    r = cli("filter", "lists", "--json")
    assert r.code == 0, r.err
    return {row["name"]: row for row in json.loads(r.out)}


def _check(cli, *args: str) -> dict[str, object]:
    r = cli("filter", "check", *args, "--json")
    assert r.code == 0, r.err
    result: dict[str, object] = json.loads(r.out)
    return result


def test_import_reports_bad_lines_and_check_decides(cli, tmp_path: Path, settings) -> None:
    hosts = _write(
        tmp_path / "gambling.hosts",
        "# a hosts file",
        "0.0.0.0 casino.example",
        "0.0.0.0 bad..name",
        "0.0.0.0 bets.example",
    )
    r = cli("filter", "lists", "import", str(hosts), "--format", "hosts", "--category", "gambling")
    assert r.code == 0, r.err
    assert "Imported list 'gambling' (gambling): 2 entries" in r.out
    assert "1 lines were not imported" in r.err and "line 3" in r.err
    row = _lists(cli)["gambling"]
    assert row["entries"] == 2 and row["problems"] == 1 and row["sha256"]
    assert ListStore(settings.data).has("1")

    blocked = _check(cli, "WWW.Casino.Example.", "--group", "ks2")
    assert blocked["action"] == "block" and blocked["categories"] == ["gambling"]
    assert blocked["host"] == "www.casino.example" and blocked["rule"] == "casino.example"
    assert "gambling" in str(blocked["reason"]).lower()
    assert _check(cli, "example.org", "--group", "staff")["action"] == "allow"
    unknown = _check(cli, "casino.example")
    assert unknown["action"] == "block" and unknown["policy"] == "eyfs"
    at = _check(cli, "https://casino.example/x", "--group", "ks2", "--at", "2025-03-12T12:30")
    assert at["action"] == "block"

    human = cli("filter", "check", "casino.example", "--group", "ks2")
    assert human.code == 0 and "BLOCK" in human.out and "rule: casino.example" in human.out

    bad = cli("filter", "check", "bad..name", "--json")
    assert bad.code != 0 and "label" in bad.err.lower() and not bad.out
    assert cli("filter", "check", "x.example", "--group", "ks9").code != 0


def test_import_errors_say_what_to_fix(cli, tmp_path: Path) -> None:
    path = _write(tmp_path / "l.txt", "a.example")
    r = cli("filter", "lists", "import", str(path), "--format", "domains", "--category", "gamblng")
    assert r.code == 2 and "did you mean 'gambling'" in r.err and "generative_ai" in r.err
    r = cli("filter", "lists", "import", str(path), "--format", "csv", "--category", "chat")
    assert r.code == 2 and "hosts|domains|adblock" in r.err
    r = cli("filter", "lists", "import", str(tmp_path / "nope"), "--format", "domains",
            "--category", "chat")  # fmt: skip
    assert r.code == 2 and "no such file" in r.err
    assert _lists(cli) == {}


def test_illegal_url_lists_beat_school_allow(cli, tmp_path: Path, inst) -> None:
    school = new_school(inst, "westpark")
    urls = _write(tmp_path / "iwf.txt", "bad.example/images/")
    r = cli("filter", "lists", "import", str(urls), "--format", "urls", "--category",
            "pornography", "--illegal", "--name", "IWF")  # fmt: skip
    assert r.code == 0, r.err
    from esafety.filtering import asking

    with acting(inst, school) as session:
        asking.add_school_entry(session, "bad.example", "allow", "a mistake")
    result = _check(cli, "http://bad.example/images/1.jpg", "--group", "staff",
                    "--school", "westpark")  # fmt: skip
    assert result["action"] == "block" and "illegal" in str(result["reason"])
    other = _check(cli, "http://bad.example/other", "--group", "ks2", "--school", "westpark")
    assert other["action"] == "allow" and str(other["rule"]).startswith("school entry")


def test_policy_assign_and_check_as_a_person(cli, tmp_path: Path, inst) -> None:
    school = new_school(inst, "westpark")
    with acting(inst, school) as session:
        pupil = add_pupil(session, year="Year 4", class_name="4B")
        username = pupil.username
    assert _check(cli, "www.google.co.uk", "--person", username)["action"] == "rewrite"
    r = cli("filter", "policy", "assign", "ks1", "--school", "westpark", "--year", "Year 4")
    assert r.code == 0 and "Assigned policy ks1 to year Year 4" in r.out
    swiggle = _check(cli, "www.google.co.uk", "--person", username)
    assert swiggle["action"] == "block" and swiggle["policy"] == "ks1"
    assert "year" in str(swiggle["policy_chosen_by"])
    r = cli("filter", "policy", "assign", "ks2", "--school", "westpark")
    assert r.code == 2 and "exactly one of" in r.err
    r = cli("filter", "check", "x.example", "--person", "nobody")
    assert r.code == 2 and "no person has the username 'nobody'" in r.err


class _Lists(BaseHTTPRequestHandler):
    body = b"one.example\ntwo.example\n"
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def list_server() -> Iterator[tuple[str, type[_Lists]]]:
    handler = type("Handler", (_Lists,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/list.txt", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_update_downloads_and_keeps_the_last_good_copy(cli, tmp_path, list_server) -> None:
    url, handler = list_server
    first = _write(tmp_path / "social.txt", "first.example")
    r = cli("filter", "lists", "import", str(first), "--format", "domains", "--category",
            "social_media", "--url", url, "--every", "24")  # fmt: skip
    assert r.code == 0, r.err
    r = cli("filter", "lists", "update")
    assert r.code == 0 and "Updated 'social': 2 entries" in r.out
    assert _check(cli, "two.example", "--group", "ks2")["action"] == "block"
    assert _check(cli, "first.example", "--group", "ks2")["action"] == "allow"
    good = _lists(cli)["social"]

    handler.status = 404
    r = cli("filter", "lists", "update", "--name", "social")
    assert r.code == 1 and "kept the last good copy, 2 entries" in r.err and "404" in r.err
    handler.status, handler.body = 200, b"<html>not a list</html>\n"
    r = cli("filter", "lists", "update")
    assert r.code == 1 and "no usable entry" in r.err
    after = _lists(cli)["social"]
    assert after["entries"] == 2 and after["sha256"] == good["sha256"]
    assert after["last_good_at"] == good["last_good_at"] and "no usable entry" in str(
        after["last_error"]
    )
    assert _check(cli, "two.example", "--group", "ks2")["action"] == "block"

    r = cli("filter", "lists", "update", "--name", "missing")
    assert r.code == 2 and "no filter list is named 'missing'" in r.err
