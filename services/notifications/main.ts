import { runDistributed } from "../shared/run.ts";
import { createNotificationsService } from "./service.ts";

await runDistributed("notifications", createNotificationsService);
