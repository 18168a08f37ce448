"""REST API v1 of ingest (routes in `webapp.ingest.api_urls`): `reading` (frames, their files, count series) and
`posting` (what gateways post: frames to count, and counts made on the gateway)."""
