from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """
    A length of time in the two largest units that say it: "42 s", "3 min 5 s", "1 h 12 min".

    Django's timesince counts whole minutes and calls anything shorter "0 minutes", which is most exports'.
    """
    if value is None:
        return ""
    seconds = round(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"
