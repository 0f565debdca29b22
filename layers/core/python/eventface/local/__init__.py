"""The local stack: the whole platform on one machine, with no AWS account (``make up``).

Layout
------
This package is *developer tooling*, not runtime code: no Lambda handler, service or adapter
imports it (the architecture rule "runtime code never imports infra" applies to it in spirit: it is
the local infrastructure). It lives inside the ``eventface`` distribution rather than under
``infra/`` because the demo (:mod:`eventface.demo.run`) and the end-to-end tests import it through
the one import path the project has (CONVENTIONS: "one import path everywhere"; no
``sys.path`` tricks, no second package mapping for ``infra/``). Its heavy, dev-only dependencies
(moto, chalice) are imported inside functions, so importing the package costs nothing.

- :mod:`eventface.local.moto_patches`: serialises the moto requests that AWS makes atomic and
  makes moto's transactions independent of table size.
- :mod:`eventface.local.resources`: the tables, bucket and queues the stack creates.
- :mod:`eventface.local.cognito`: the user pool, users, groups and sign-in on moto's Cognito.
- :mod:`eventface.local.pump`: the event pump that feeds queue messages and stream records to
  consumer handlers.
- :mod:`eventface.local.client`: the HTTP clients the demo and the end-to-end tests use.
- :mod:`eventface.local.stack`: :func:`~eventface.local.stack.running_stack` and ``python -m
  eventface.local`` (what ``make up`` runs).
"""
