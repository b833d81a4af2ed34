"""The customer's add-to-wallet page behind `add_url` (German or English, no JavaScript).

`routes` registers `GET /add/{token}`; `language`, `platform`, `qr` and `template`
hold the wording, the User-Agent reading, the QR code and the HTML.
"""

from walletsvc.web.add_page import routes as routes
