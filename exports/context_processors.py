from .executor import Budget
from .models import ExportJob, Trigger
from .reconcile import reconcile_jobs
from .serializers import blank_bar, serialize_job

TRAY_STATE_COOKIE = "export_tray"
TRAY_STATES = {"open", "collapsed"}


def export_tray(request):
    """Every page renders the tray with the current state (the lazy check runs first), so no bar starts from 0."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith(("/api/", "/admin/")):
        return {}
    reconcile_jobs(ExportJob.objects.started_by(user).to_reconcile(), trigger=Trigger.VIEW, budget=Budget.for_request())
    return {
        "tray_jobs": [serialize_job(job) for job in ExportJob.objects.tray_of(user)],
        # Drawn into the tray's <template>: the bar exports.js clones for a job the page did not render.
        "tray_blank_bar": blank_bar(),
        # Open or collapsed as the user last left it, rendered so (a cookie, not storage: no flash on load).
        "tray_state": request.COOKIES.get(TRAY_STATE_COOKIE)
        if request.COOKIES.get(TRAY_STATE_COOKIE) in TRAY_STATES
        else "",
    }
