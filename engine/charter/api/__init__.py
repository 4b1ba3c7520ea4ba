"""The HTTP service over the Charter library (`charter serve`): FastAPI, problem+json, OpenID Connect and API tokens.

The application is built by `charter.api.app.create_app`; routes live in `charter.api.routes` and
call the same library functions as the CLI, after `charter.access.authorize`.
"""
