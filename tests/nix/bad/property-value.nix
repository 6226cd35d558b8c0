# logbias is latency or throughput.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.properties.logbias = "fast";
}
