"""The wire contract: the only package that knows routes, headers and JSON shapes.

The service documents its JSON bodies and error codes but not its HTTP details. What
this package assumes is marked **assumed** (see the project's wire contract), each in
one place, so that correcting one is a one-line change: the sandbox server imports the
same names to implement the contract it is tested against. One module per role, and
nothing re-exported here: import a name from the module that owns it.

- `requests`: what a send puts on the wire (route, headers, body, idempotency key).
- `answers`: what the service answers and what each answer means: a `SentMessage`, or
  the typed error it stands for; the sandbox's encoding of the same answers.
- `codes`: the documented error codes and HTTP statuses, the error class each stands
  for and the hint shown with it.
- `inbound`: the webhook deliveries the service posts (headers and JSON).
- `dates`: the service's date form (`20 May 2024 08:28:37`), parsed and written.
- `convert`: the cattrs converter between wire JSON and the SDK's models.
"""
