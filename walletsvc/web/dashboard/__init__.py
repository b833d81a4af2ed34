"""The operator dashboard behind `GET /dashboard` (German or English, no JavaScript).

`routes` registers the page, sign-in and sign-out; `session` holds the cookie and the
form's origin check, `language` the wording, `charts` the inline SVG charts and
`template` (with `sections`) the HTML.
"""

from walletsvc.web.dashboard import routes as routes
