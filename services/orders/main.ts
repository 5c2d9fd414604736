import { runDistributed } from "../shared/run.ts";
import { createOrdersService } from "./service.ts";

await runDistributed("orders", createOrdersService);
