"""The alert benchmark (run it with scripts/bench_alerts; it never runs in CI).

How soon, how often and with which picture does a phone hear about a visit? A real Home
Assistant runs in the benchmark's process (scripts.bench_lib.hass) with HTTP on a loopback port
(the pictures' signed URLs need it), the integration's entry, the shipped notification blueprint
as an automation, and a companion-app phone whose notify action records each call. The modules:
home (that Home Assistant with its model servers, the phone and the automation), record (what
happened, with monotonic times), pictures (camera JPEGs of one colour each, and reading a
notification's picture back), latency (file closed -> phone notified, next to folder_watcher),
visits (the demo replay and the person standing still), report (the tables).
"""
