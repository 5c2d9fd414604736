import { runDistributed } from "../shared/run.ts";
import { createAuthService } from "./service.ts";

await runDistributed("auth", createAuthService);
