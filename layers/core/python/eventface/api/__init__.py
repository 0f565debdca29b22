"""HTTP helpers shared by the Chalice apps: error tables, JSON encoding, request parsing, OpenAPI.

Handlers stay thin: parse with :mod:`eventface.api.requests`, call one service, answer with
:mod:`eventface.api.encoding`; :func:`eventface.api.http.handled` maps errors with the app's table.
"""
