import { runDistributed } from "../shared/run.ts";
import { createPaymentsService } from "./service.ts";

await runDistributed("payments", createPaymentsService);
