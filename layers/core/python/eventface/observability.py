"""The one Logger, Metrics and Tracer of the platform (AWS Lambda Powertools, service "eventface").

Powertools reads its own configuration (``POWERTOOLS_*``, ``AWS_REGION``) from the environment;
nothing here does I/O at import. Never log images, templates or embeddings: ids, outcomes,
similarities and timings only.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "eventface"
NAMESPACE = "eventface"

logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
tracer = Tracer(service=SERVICE)
