# 242 bytes is a valid dataset name, but the moved-aside name a replica restore derives is 276.
{ lib, ... }:
{
  modules.storage.datasets.enable = true;
  modules.storage.datasets.parentDataset = "tank/${lib.strings.replicate 230 "a"}";
  modules.storage.datasets.services.sonarr.usedBy = [ "sonarr" ];
  modules.storage.datasets.services.sonarr.preseed = {
    enable = true;
    replica.dataset = "backup/sonarr";
  };
}
