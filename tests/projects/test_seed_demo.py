"""seed_demo builds the demo from real rendered clips and can run any number of times."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from modal_jobs.media import probe
from projects.models import Clip, Project

SMALL = ["--clip-seconds", "1", "--width", "320", "--height", "180", "--frame-rate", "10"]


@pytest.mark.django_db
def test_running_it_twice_leaves_one_demo_user_one_project_and_three_clips(settings):
    settings.DEBUG = True
    call_command("seed_demo", *SMALL)
    first_clips = list(Clip.objects.values_list("pk", "media"))
    call_command("seed_demo", *SMALL)

    users = get_user_model().objects
    demo = users.get(username="demo")
    assert demo.check_password("demo")
    assert Project.objects.filter(owner=demo).count() == 1
    project = Project.objects.get(owner=demo, name="Demo project")
    assert list(project.clips.values_list("pk", "media")) == first_clips
    assert project.clips.count() == 3
    assert users.get(username="admin").is_superuser


@pytest.mark.django_db
def test_the_demo_clips_are_real_distinct_videos_with_sound(settings):
    settings.DEBUG = True
    call_command("seed_demo", *SMALL)
    clips = list(Clip.objects.all())
    for clip in clips:
        info = probe(clip.media.path)
        assert (info.width, info.height, info.has_audio) == (320, 180, True)
        assert info.duration == pytest.approx(1.0, abs=0.1)
    assert len({clip.media.read() for clip in clips}) == 3


@pytest.mark.django_db
def test_it_sets_the_given_password_and_creates_no_admin_with_debug_off(settings):
    settings.DEBUG = False
    call_command("seed_demo", *SMALL, "--password", "s3cret-demo")
    assert get_user_model().objects.get(username="demo").check_password("s3cret-demo")
    assert not get_user_model().objects.filter(username="admin").exists()


@pytest.mark.django_db
def test_seeding_again_keeps_a_matching_password_so_open_sessions_stay_signed_in(settings, client):
    """make run seeds on every start: a new hash of the same password would sign everyone out."""
    settings.DEBUG = False
    call_command("seed_demo", *SMALL)
    assert client.login(username="demo", password="demo")
    assert client.get("/projects/").status_code == 200
    output = io.StringIO()

    call_command("seed_demo", *SMALL, stdout=output)

    assert "password unchanged" in output.getvalue()
    assert client.get("/projects/").status_code == 200  # the same session, still signed in


@pytest.mark.django_db
def test_seeding_with_another_password_sets_it_and_says_so(settings):
    settings.DEBUG = False
    call_command("seed_demo", *SMALL)
    output = io.StringIO()
    call_command("seed_demo", *SMALL, "--password", "changed", stdout=output)
    assert "password updated" in output.getvalue()
    assert get_user_model().objects.get(username="demo").check_password("changed")
