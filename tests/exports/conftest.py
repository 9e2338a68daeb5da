import pytest

from ..processes import wait_for


@pytest.fixture
def finished_call(executor, project, clip, eager_checks):
    """A one-second export whose call has succeeded on the executor, not yet reconciled."""
    from modal_jobs.executors import CallStatus

    from ..helpers import start

    job = start(project, clip)
    wait_for(lambda: executor.inner.poll(job.call_id).status is CallStatus.SUCCEEDED, what="the call")
    return job


class GroupListener:
    """A channel in the owner's group of the real channel layer: what broadcasts the owner's sockets would get."""

    def __init__(self, user_id):
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        from exports.broadcast import user_group

        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(user_group(user_id), self.channel)

    def drain(self, quiet_seconds=0.3) -> list[dict]:
        """Every message received until none arrives for `quiet_seconds`."""
        import asyncio

        from asgiref.sync import async_to_sync

        messages = []

        async def receive_all():
            while True:
                try:
                    messages.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout=quiet_seconds))
                except TimeoutError:
                    return

        async_to_sync(receive_all)()
        return messages


@pytest.fixture
def owner_broadcasts(project):
    return GroupListener(project.owner_id)
