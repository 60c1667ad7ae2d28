"""The pipeline model: the deal model (win, loss and timing by deal age, fitted from every deal a scenario
knows, open ones included) and the stage settings calibrated from the closed deals, with the forecasts
and backtests made with them. Below quota and simulation; imports neither."""

from tercap.pipeline.calibrate import Calibration, calibrate, calibrated_settings
from tercap.pipeline.choice import has_stage_evidence, open_deal_model, open_deal_win
from tercap.pipeline.deals import DealTable, deal_table, deals_at, known_deals
from tercap.pipeline.forecast import WindowForecast, forecast_window
from tercap.pipeline.model import DealModel, TooLittleHistory, fit_deal_model

__all__ = ["Calibration", "DealModel", "DealTable", "TooLittleHistory", "WindowForecast", "calibrate",
           "calibrated_settings", "deal_table", "deals_at", "fit_deal_model", "forecast_window", "has_stage_evidence",
           "known_deals", "open_deal_model", "open_deal_win"]
