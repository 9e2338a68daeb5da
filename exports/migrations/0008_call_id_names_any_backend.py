from django.db import migrations, models


class Migration(migrations.Migration):
    """The field holds local call ids too, so its name no longer says Modal."""

    dependencies = [
        ("exports", "0007_retry_claimed_on_the_retried_job"),
    ]

    operations = [
        migrations.RenameField(model_name="exportjob", old_name="modal_call_id", new_name="call_id"),
        migrations.AlterField(
            model_name="exportjob",
            name="call_id",
            field=models.CharField(
                blank=True,
                default="",
                help_text="The executor's call id, in the backend's own format (fc-... on Modal, local-... locally).",
                max_length=255,
            ),
        ),
    ]
