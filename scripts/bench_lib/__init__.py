"""The ai_security throughput benchmark (run it with scripts/bench; it never runs in CI).

A real Home Assistant with the integration runs in the benchmark's own process; a detector stub, an
LLM stub and an upload feeder run as separate processes, so the figures measure the integration and
not the stand-ins. The modules: cli (orchestration and options), hass (Home Assistant and the
entry), feeder and images (the uploads), stubs (the model servers), board (memory shared with the
feeder), probes (loop lag, garbage collection, RSS, CPU, profiler), sqlstats (SQL counts), report
(figures and targets), postgres (an optional throw-away PostgreSQL server).
"""
