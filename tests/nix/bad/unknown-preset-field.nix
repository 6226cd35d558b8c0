# Presets have an on/off switch, not dataset settings (those go under services.sonarr).
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.presets.sonarr.recordsize = "16K";
}
