"""The library layer: core/ on its own, without Home Assistant.

Real folders, databases, ffmpeg and HTTP servers; and the checks that keep the layers apart.
"""
