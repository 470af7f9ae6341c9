"""``/metrics``: Prometheus text read back with prometheus_client's own parser, scraped with
an API token as Prometheus does; the DNS filter's, decision log's and scheduler's counts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import dns.message
import dns.query
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from esafety import metrics
from esafety.audit import SYSTEM
from esafety.config import DnsSettings
from esafety.db import utcnow
from esafety.filtering.dns_service import DnsService
from esafety.filtering.serve_parts import ServeParts
from esafety.installation import Installation
from esafety.metrics import Sample, render
from esafety.scheduler import run_due, schedule
from esafety.security import service
from esafety.security.roles import Role
from esafety.web.app import create_app
from tests.accounts import make_school
from tests.filtering.loop_thread import LoopThread

_SAMPLE_LINE = re.compile(
    r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? '
    r"(-?[0-9.e+-]+|NaN|[+-]Inf)"
)


def families(text: str) -> dict[str, object]:
    """Parse with prometheus_client, and check the line grammar it is lenient about."""
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in typed, f"{name} typed twice"
            typed.add(name)
        elif line.startswith("# HELP "):
            continue
        else:
            assert _SAMPLE_LINE.fullmatch(line), f"not a sample line: {line!r}"
            assert line.split("{")[0].split(" ")[0] in typed, f"sample before its TYPE: {line}"
    assert text.endswith("\n")
    return {family.name: family for family in text_string_to_metric_families(text)}


def values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# -- the format ---------------------------------------------------------------------------


def test_labels_and_help_are_escaped_and_read_back_exactly() -> None:
    awkward = 'C:\\lists\\"new"\nline'
    text = render(
        [
            Sample("esafety_test_total", 3, "Help with \\ and\na new line.", "counter"),
            Sample("esafety_test_gauge", 1.5, "A gauge.", "gauge", {"path": awkward}),
            Sample("esafety_test_gauge", float("inf"), "A gauge.", "gauge", {"path": "b"}),
        ]
    )
    parsed = families(text)
    assert parsed["esafety_test"].type == "counter"  # type: ignore[attr-defined]
    got = values(text)
    assert got[("esafety_test_total", ())] == 3
    assert got[("esafety_test_gauge", (("path", awkward),))] == 1.5
    assert got[("esafety_test_gauge", (("path", "b"),))] == float("inf")


def test_a_family_is_written_once_with_its_samples_together() -> None:
    text = render(
        [
            Sample("esafety_jobs", 1, "Jobs.", "gauge", {"kind": "a"}),
            Sample("esafety_other", 2, "Other.", "gauge"),
            Sample("esafety_jobs", 3, "Jobs.", "gauge", {"kind": "b"}),
            Sample("esafety_jobs", 4, "Jobs.", "gauge", {"kind": "b"}),  # a duplicate series
        ]
    )
    assert text.count("# TYPE esafety_jobs gauge") == 1
    lines = text.splitlines()
    first = lines.index('esafety_jobs{kind="a"} 1')
    assert lines[first + 1] == 'esafety_jobs{kind="b"} 3'
    assert 'esafety_jobs{kind="b"} 4' not in text
    families(text)


def test_a_bad_name_is_left_out_not_half_written(caplog: pytest.LogCaptureFixture) -> None:
    text = render([Sample("esafety ok", 1), Sample("esafety_fine", 2, labels={"0bad": "x"})])
    assert text == "\n"
    assert "not a Prometheus name" in caplog.text


def test_a_failing_collector_is_counted_and_the_others_still_show() -> None:
    registry = metrics.MetricsRegistry()

    def broken() -> list[Sample]:
        raise RuntimeError("disk gone")

    registry.register("broken", broken)
    stop = registry.register("fine", lambda: [Sample("esafety_fine", 1, "Fine.", "gauge")])
    text = render(registry.collect())
    got = values(text)
    assert got[("esafety_fine", ())] == 1
    assert got[("esafety_metrics_collector_errors_total", ())] == 1
    stop()
    assert registry.names() == ["broken"]


def test_counters_of_a_dataclass_and_of_a_mapping() -> None:
    from esafety.filtering.dns.handler import DnsCounters

    counters = DnsCounters(queries=7, blocked=2, extra={"tcp_fallbacks": 1})
    got = values(render(metrics.counters_of("esafety_dns", counters)))
    assert got[("esafety_dns_queries_total", ())] == 7
    assert got[("esafety_dns_tcp_fallbacks_total", ())] == 1
    mapped = metrics.counters_of(
        "",
        {"esafety_log_written_total": 5, "esafety_log_pending": 2},
        gauges={"esafety_log_pending"},
    )
    assert [(s.name, s.type) for s in mapped] == [
        ("esafety_log_written_total", "counter"),
        ("esafety_log_pending", "gauge"),
    ]


# -- the route ----------------------------------------------------------------------------


@pytest.fixture
def app_and_school(inst: Installation) -> Iterator[tuple[TestClient, dict[Role, str]]]:
    school = make_school(inst, "metrics")
    tokens = {
        role: service.create_token(inst, school[role].id, "prometheus", actor=SYSTEM)[0]
        for role in (Role.TECHNICIAN, Role.ADMIN, Role.TEACHER, Role.DSL)
    }
    with TestClient(create_app(inst), follow_redirects=False) as client:
        yield client, tokens


def test_prometheus_scrapes_with_a_technicians_token(
    app_and_school: tuple[TestClient, dict[Role, str]],
) -> None:
    client, tokens = app_and_school
    for role in (Role.TECHNICIAN, Role.ADMIN):
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == metrics.CONTENT_TYPE
        parsed = families(answer.text)
        for name in (
            "process_cpu_seconds",
            "process_start_time_seconds",
            "esafety_info",
            "esafety_scheduled_jobs_overdue",
            "esafety_filter_lists",
            "esafety_dsl_alerts_unacknowledged",
        ):
            assert name in parsed, name
    for role in (Role.TEACHER, Role.DSL):  # counts are for the people who run the servers
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert answer.status_code == 403
    assert client.get("/metrics").status_code == 303  # no credential: to the sign-in page
    wrong = client.get("/metrics", headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 303
    assert client.get("/metrics", headers={"Authorization": "Basic eDp5"}).status_code == 303


def test_failing_scheduled_jobs_show_by_kind(
    inst: Installation, app_and_school: tuple[TestClient, dict[Role, str]]
) -> None:
    client, tokens = app_and_school
    with inst.db.session(SYSTEM) as session:
        schedule(session, "nobody.handles.this", utcnow() - timedelta(minutes=1))
    [run] = run_due(inst)
    assert not run.ok
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {tokens[Role.TECHNICIAN]}"})
    got = values(answer.text)
    assert got[("esafety_scheduled_jobs_failing", (("kind", "nobody.handles.this"),))] == 1


def test_the_dns_filter_and_its_decision_log_show_while_serve_runs(
    inst: Installation, app_and_school: tuple[TestClient, dict[Role, str]]
) -> None:
    client, tokens = app_and_school
    loop = LoopThread()
    dns_service = DnsService(inst, DnsSettings(port=0, workers=1))  # counted here, at once
    parts = ServeParts(inst)
    try:
        loop.run(dns_service.start())
        loop.run(parts.start(dns_service))
        query = dns.message.make_query("use-application-dns.net", "A")
        dns.query.udp(query, "127.0.0.1", port=dns_service.port, timeout=3)
        assert dns_service.log is not None
        dns_service.log.flush()
        answer = client.get(
            "/metrics", headers={"Authorization": f"Bearer {tokens[Role.TECHNICIAN]}"}
        )
        parsed = families(answer.text)
        got = values(answer.text)
        assert got[("esafety_dns_queries_total", ())] == 1
        assert got[("esafety_dns_log_written_total", ())] == 1
        assert got[("esafety_dns_log_dropped_total", ())] == 0
        assert parsed["esafety_dns_workers"].type == "gauge"  # type: ignore[attr-defined]
        assert ("esafety_dsl_alert_hits_total", ()) in got
    finally:
        loop.run(dns_service.close())
        loop.run(parts.close())
        loop.stop()
    assert "dns" not in metrics.registry.names()  # closed parts take their counters away
