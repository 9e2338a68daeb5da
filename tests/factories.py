import factory
from django.contrib.auth import get_user_model

from exports.models import ExecutorBackend, ExportJob, ExportKind
from projects.models import Project

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(user, create, extracted, **kwargs):
        if create:
            user.save()


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


class ExportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExportJob

    project = factory.SubFactory(ProjectFactory)
    owner = factory.SelfAttribute("project.owner")
    kind = ExportKind.MULTI_CLIP
    backend = ExecutorBackend.LOCAL
    params = factory.LazyAttribute(lambda job: {"clips": []})
