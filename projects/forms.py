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

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.CLIP_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"This file is {filesizeformat(upload.size)}; the limit is {filesizeformat(limit)}."
            )
        return upload
