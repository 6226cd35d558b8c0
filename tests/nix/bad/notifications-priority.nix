# Priorities are min, low, medium, high and urgent.
{
  modules.storage.datasets.enable = true;
  modules.notifications = {
    enable = true;
    templates.preseed-failure.priority = "critical";
  };
}
