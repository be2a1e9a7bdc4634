"""Fetching sources: URL policy, yt-dlp for video/audio pages, direct HTTP for images and subtitle files."""
