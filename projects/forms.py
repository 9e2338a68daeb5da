from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from .models import Project


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name"]


class ClipUploadForm(forms.Form):
    file = forms.FileField(label="Video file", widget=forms.ClearableFileInput(attrs={"accept": "video/*"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Said before a file is chosen, not after an upload of minutes was refused.
        limit = filesizeformat(settings.CLIP_UPLOAD_MAX_BYTES)
        self.fields["file"].help_text = f"Up to {limit}: MP4, MOV, MKV, WebM or AVI."

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.CLIP_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"This file is {filesizeformat(upload.size)}; the limit is {filesizeformat(limit)}."
            )
        return upload
