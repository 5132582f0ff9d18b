"""The one Logger, Metrics and Tracer of the service (powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "segments"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Segments", service=SERVICE)
tracer = Tracer(service=SERVICE)
