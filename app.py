"""The Segments service: one Chalice app, its blueprints, and powertools wired once."""

from aws_lambda_powertools.logging import correlation_paths
from chalice import Chalice, ConvertToMiddleware

from chalicelib.adapters import api, backfill, streams
from chalicelib.observability import logger, metrics, tracer

app = Chalice(app_name="segments")
app.register_middleware(ConvertToMiddleware(
    logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST,
                                 clear_state=True)))
app.register_middleware(ConvertToMiddleware(metrics.log_metrics))
app.register_middleware(ConvertToMiddleware(tracer.capture_lambda_handler))

app.register_blueprint(api.bp)
app.register_blueprint(streams.bp)
app.register_blueprint(backfill.bp)
