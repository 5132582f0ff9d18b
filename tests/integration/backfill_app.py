"""An app with only the backfill worker, for tests that run a worker process on its own."""

from chalice import Chalice

from chalicelib.adapters import backfill

app = Chalice(app_name="backfill-worker")
app.register_blueprint(backfill.bp)
