"""`python -m orchestrator`: run one worker with the settings in the environment."""

from __future__ import annotations

import logging
import sys

from orchestrator.config import OrchestratorSettings
from orchestrator.services import Services
from orchestrator.worker import run_worker

if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = OrchestratorSettings()
    sys.exit(run_worker(Services(settings), concurrency=settings.worker_concurrency))
