import { runDistributed } from "../shared/run.ts";
import { createInventoryService } from "./service.ts";

await runDistributed("inventory", createInventoryService);
