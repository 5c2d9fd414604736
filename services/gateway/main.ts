import { runDistributed } from "../shared/run.ts";
import { createGatewayService } from "./service.ts";

await runDistributed("gateway", createGatewayService);
