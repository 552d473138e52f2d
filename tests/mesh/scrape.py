"""Scraping a metrics endpoint and reading samples from the exposition text."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape: every sample of the exposition text, by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self._samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None."""
        return self._samples.get((name, frozenset(labels.items())))

    def names(self) -> set[str]:
        return {name for name, _ in self._samples}

    def buckets(self, name: str, **labels: str) -> dict[str, float]:
        """le → cumulative count of a histogram's buckets."""
        wanted = set(labels.items())
        return {
            dict(sample_labels)["le"]: value
            for (sample_name, sample_labels), value in self._samples.items()
            if sample_name == f"{name}_bucket" and wanted <= set(sample_labels)
        }


async def scrape(url: str) -> Scrape:
    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    return Scrape(await asyncio.to_thread(fetch))
