"""
Run one export the way a Modal container runs a sync function's input, cancel included.

    python -m tests.modal_jobs.replay_modal_input PAYLOAD_JSON_FILE

Modal 1.6.4 (`_container_entrypoint.py`) installs a SIGUSR1 handler that raises
`InputCancellation` in the main thread, where user code runs, and sends SIGUSR1
when the input is cancelled; the container reports the input terminated once user
code has unwound. The store comes from the AWS_* variables, as from the Modal secret.
"""

import json
import signal
import sys

from modal.exception import InputCancellation

from modal_jobs.modal_app import run_in_modal


def cancel_input(signal_number, frame):
    raise InputCancellation("Input was cancelled by user")


def main(payload_path: str) -> int:
    with open(payload_path) as handle:
        payload = json.load(handle)
    signal.signal(signal.SIGUSR1, cancel_input)
    try:
        result = run_in_modal(payload)
    except InputCancellation:
        print("cancelled", flush=True)
        return 0
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
