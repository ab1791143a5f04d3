# dfcrm 0.2-2.1 crmsim() runs quoted in tests/test_crm.py (nsim = 20000, seed 1009).
# --- sim_one1.R
library(dfcrm, lib.loc="/tmp/rlib")
cfg <- "one1"
PI <- c(0.05,0.12,0.25,0.40,0.55); sk <- getprior(0.05,0.25,3,5)
t0 <- proc.time()
if (cfg=="one1") s <- crmsim(PI,sk,0.25,24,1,nsim=20000,mcohort=3,restrict=TRUE,count=FALSE)
if (cfg=="one3") s <- crmsim(PI,sk,0.25,24,3,nsim=20000,mcohort=3,restrict=TRUE,count=FALSE)
if (cfg=="two")  s <- crmsim(PI,sk,0.25,24,c(rep(1,3),rep(2,3),rep(3,3),rep(4,3),rep(5,12)),nsim=20000,mcohort=1,restrict=TRUE,count=FALSE)
el <- proc.time()-t0
options(digits=8)
cat(cfg,"elapsed",el[["elapsed"]],"\n"); cat("MTD",s$MTD,"\n"); cat("level",s$level,"\n"); cat("tox",s$tox,"\n"); cat("total tox",sum(s$tox),"\n"); cat("design",s$design,"\n")
cat("mean final est",mean(s$final.est),"\n")
saveRDS(s,"/tmp/sim_one1.rds")
# --- sim_one3.R
library(dfcrm, lib.loc="/tmp/rlib")
cfg <- "one3"
PI <- c(0.05,0.12,0.25,0.40,0.55); sk <- getprior(0.05,0.25,3,5)
t0 <- proc.time()
if (cfg=="one1") s <- crmsim(PI,sk,0.25,24,1,nsim=20000,mcohort=3,restrict=TRUE,count=FALSE)
if (cfg=="one3") s <- crmsim(PI,sk,0.25,24,3,nsim=20000,mcohort=3,restrict=TRUE,count=FALSE)
if (cfg=="two")  s <- crmsim(PI,sk,0.25,24,c(rep(1,3),rep(2,3),rep(3,3),rep(4,3),rep(5,12)),nsim=20000,mcohort=1,restrict=TRUE,count=FALSE)
el <- proc.time()-t0
options(digits=8)
cat(cfg,"elapsed",el[["elapsed"]],"\n"); cat("MTD",s$MTD,"\n"); cat("level",s$level,"\n"); cat("tox",s$tox,"\n"); cat("total tox",sum(s$tox),"\n"); cat("design",s$design,"\n")
cat("mean final est",mean(s$final.est),"\n")
saveRDS(s,"/tmp/sim_one3.rds")
# --- sim_two.R
library(dfcrm, lib.loc="/tmp/rlib")
cfg <- "two"
PI <- c(0.05,0.12,0.25,0.40,0.55); sk <- getprior(0.05,0.25,3,5)
t0 <- proc.time()
if (cfg=="one1") s <- crmsim(PI,sk,0.25,24,1,nsim=20000,mcohort=3,restrict=TRUE,count=FALSE)
if (cfg=="one3") s <- crmsim(PI,sk,0.25,24,3,nsim=20000,mcohort=3,restrict=TRUE,count=FALSE)
if (cfg=="two")  s <- crmsim(PI,sk,0.25,24,c(rep(1,3),rep(2,3),rep(3,3),rep(4,3),rep(5,12)),nsim=20000,mcohort=1,restrict=TRUE,count=FALSE)
el <- proc.time()-t0
options(digits=8)
cat(cfg,"elapsed",el[["elapsed"]],"\n"); cat("MTD",s$MTD,"\n"); cat("level",s$level,"\n"); cat("tox",s$tox,"\n"); cat("total tox",sum(s$tox),"\n"); cat("design",s$design,"\n")
cat("mean final est",mean(s$final.est),"\n")
saveRDS(s,"/tmp/sim_two.rds")
