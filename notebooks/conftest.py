"""nbval settings for the chapter notebooks.

HTML (random ids), SVG figures and widget views change on every run, so nbval does not compare
them; text/plain is compared, so report objects give a good plain-text repr. PNG is skipped by
nbval already.
"""

NOT_COMPARED = ("text/html", "image/svg+xml", "application/vnd.jupyter.widget-view+json")


def pytest_collectstart(collector):
    if hasattr(collector, "skip_compare"):  # an nbval notebook collector
        collector.skip_compare += NOT_COMPARED
