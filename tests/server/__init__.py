"""The reference model servers and the lab's programs that the other layers drive.

The detection server's contract and backends, the llama-server fixture, ffmpeg and PostgreSQL.
"""
