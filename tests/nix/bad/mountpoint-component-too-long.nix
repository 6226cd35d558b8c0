# Linux: a path component is at most 255 bytes.
{ lib, ... }:
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.services.app.mountpoint = "/persist/${lib.strings.replicate 256 "x"}";
}
