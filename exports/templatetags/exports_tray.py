from django import template

register = template.Library()


@register.inclusion_tag("exports/bar.html")
def export_bar(job):
    return {"job": job}
