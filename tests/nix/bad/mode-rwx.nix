# A mode is octal digits, not ls notation.
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.mode = "rwx";
}
