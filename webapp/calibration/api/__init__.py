"""REST API of calibration under /api/v1/cameras/{id}/ and /api/v1/frames/{id}/, a module per part (routes in
`webapp.calibration.api_urls`).

Marking: marked frames and their images, suggested frames to mark, and the model's head proposals for a frame.
Jobs: starting and following calibration, adaptation and recount jobs, the camera's weights versions and which one is
active (and rolling back from it), and the active version's ONNX for its gateway.

Signed-in people only (session auth with CSRF), except `weights.onnx`, which the camera's gateway fetches with its
token: viewers read, operators and admins write. Nothing here imports torch: the jobs run on the workers.
"""
