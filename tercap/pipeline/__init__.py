"""The deal model: win, loss and timing by deal age, fitted from every deal a scenario knows (open ones
included), and the forecasts and backtests made with it. Below quota and simulation; imports neither."""

from tercap.pipeline.deals import DealTable, deal_table, deals_at, known_deals
from tercap.pipeline.forecast import WindowForecast, forecast_window
from tercap.pipeline.model import DealModel, TooLittleHistory, fit_deal_model

__all__ = ["DealModel", "DealTable", "TooLittleHistory", "WindowForecast", "deal_table", "deals_at",
           "fit_deal_model", "forecast_window", "known_deals"]
