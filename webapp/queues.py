"""The names the web side and the workers agree on: each background task's name and the queues that take them.

The web side sends a task by its name (`webapp.celery_app.enqueue`), the workers register their tasks under these
names (`workers.tasks`), and the settings route them (CELERY_TASK_ROUTES). The names are the tasks' module paths in
`workers`, as Celery would name them itself: messages already waiting in the broker keep their meaning.
"""

COUNT_FRAME = "workers.tasks.count_frame"
# The same work, the frame counted in a batch with others (CROWDSCOPE_BATCHED_MODELS), on the same queue.
COUNT_FRAME_IN_BATCH = "workers.tasks.count_frame_in_batch"
REQUEUE_STALE_FRAMES = "workers.tasks.requeue_stale_frames"
GENERATE_REPORT = "workers.tasks.generate_report"
ANSWER_QUESTION = "workers.tasks.answer_question"
SEND_DUE_REPORTS = "workers.tasks.send_due_reports"
SEND_REPORT_EMAIL = "workers.tasks.send_report_email"
CALIBRATE_CAMERA = "workers.tasks.calibrate_camera"
RECOUNT_PERIOD = "workers.tasks.recount_period"
ADAPT_CAMERA = "workers.tasks.adapt_camera"
ADAPT_NEW_CAMERAS = "workers.tasks.adapt_new_cameras"
EXPIRE_BY_AGE = "workers.tasks.expire_by_age"
DELETE_REPLACED_UPLOADS = "workers.tasks.delete_replaced_uploads"
DELIVER_NOTIFICATION = "workers.tasks.deliver_notification"
SWEEP_NOTIFICATIONS = "workers.tasks.sweep_notifications"
CHECK_UNUSUAL_LEVELS = "workers.tasks.check_unusual_levels"
WARM_SITE_ANALYTICS = "workers.tasks.warm_site_analytics"

# Tasks routed nowhere else (the beat's) go here.
DEFAULT_QUEUE = "default"
# The LLM is heavy: reports have a queue of their own, so counting never waits behind one.
REPORTS_QUEUE = "reports"
# Calibration fine-tunes for minutes (adaptation counts every frame three times): their own queue, so counting never
# waits behind them.
CALIBRATE_QUEUE = "calibrate"


def count_queue(arch: str) -> str:
    """The queue of frames counted with `arch`: a queue per model, so GPU hosts can take full CSRNet and CPU hosts
    the compact one."""
    return f"count.{arch}"
