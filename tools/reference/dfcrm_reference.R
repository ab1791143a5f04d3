# Regenerate tests/data/dfcrm_crm_reference.csv (run by hand; tests never need R).
#   apt-get install r-base-core; R CMD INSTALL -l /tmp/rlib <dfcrm 0.2-2.1 source from CRAN>
#   Rscript tools/reference/dfcrm_reference.R
# The crmsim() runs whose results are quoted in tests/test_crm.py are in tools/reference/dfcrm_crmsim.R.
library(dfcrm, lib.loc="/tmp/rlib")
A <- getprior(0.05,0.25,3,5)
B <- c(0.05,0.10,0.20,0.30,0.50)
C <- getprior(0.04,0.20,2,6)
D <- c(0.05,0.10,0.20,0.35,0.50,0.70)   # crm.Rd example skeleton
E <- getprior(0.05,0.30,4,8)
cases <- list(
 list("A01",A,0.25,c(1),c(0)),
 list("A02",A,0.25,c(1),c(1)),
 list("A03",A,0.25,c(1,1,1),c(0,0,0)),
 list("A04",A,0.25,c(1,1,1),c(0,0,1)),
 list("A05",A,0.25,c(1,1,1,2,2,2),c(0,0,0,0,0,1)),
 list("A06",A,0.25,c(3,3,3),c(1,1,0)),
 list("A07",A,0.25,c(1,2,3,4,5),c(0,0,0,0,0)),
 list("A08",A,0.25,c(3,3,3,3,3,3),c(1,1,1,1,1,1)),
 list("A09",A,0.25,c(2,2,2,3,3,3,4,4,4),c(0,0,0,0,1,0,1,1,0)),
 list("A10",A,0.25,c(1,1,1,2,2,2,3,3,3,4,4,4,4,4,4,3,3,3,3,3,3,4,4,4),c(0,0,0,0,0,0,0,0,1,1,0,0,1,0,1,0,0,0,1,0,0,0,1,0)),
 list("A11",A,0.25,c(1,2,3,3,3,4,4,3,3,3),c(0,0,0,0,0,1,0,0,1,0)),
 list("A12",A,0.25,c(5,5,5,5,5,5,5,5,5,5,5,5),c(0,0,0,0,0,0,0,0,0,0,0,0)),
 list("B01",B,0.20,c(1,1,1,2,2,2,3,3,3),c(0,0,0,0,0,0,0,1,1)),
 list("B02",B,0.20,c(4,4,4),c(1,1,1)),
 list("B03",B,0.20,c(2,2,2,3,3,3,3,3,3),c(0,0,0,0,0,1,0,0,0)),
 list("C01",C,0.20,c(2,2,2,3,3,3),c(0,0,0,1,0,0)),
 list("C02",C,0.20,c(1,2,3,4,5,6,6,6),c(0,0,0,0,0,1,1,0)),
 list("D01",D,0.20,c(3,4,4,3,3,4,3,2,2,2),c(0,0,1,0,0,1,1,0,0,0)),
 list("D02",D,0.20,c(1,1,2,2,3,3,4,4,5,5),c(0,0,0,0,0,0,0,1,1,1)),
 list("E01",E,0.30,c(1,2,3,4,5,6,6,6,7,7,7,6,6,6),c(0,0,0,0,0,0,0,1,1,1,0,0,1,0)),
 list("E02",E,0.30,c(4,4,4,5,5,5,6,6,6,8,8,8),c(0,0,0,0,0,0,0,0,0,0,1,0))
)
hp <- function(sk,tox,lev,model,intcpt=3,s=sqrt(1.34)) {
  if (model=="empiric") p <- function(a,x) x^exp(a) else p <- function(a,x) 1/(1+exp(-intcpt-exp(a)*x))
  xs <- if (model=="empiric") sk else log(sk/(1-sk))-intcpt
  x <- xs[lev]
  ll <- function(a) sapply(a,function(b){ q<-p(b,x); sum(ifelse(tox==1,log(q),log1p(-q)))})
  # normalise by max to avoid underflow
  g <- function(a) { v<-exp(ll(a) - a^2/2/s^2 ); v[!is.finite(v)]<-0; v }
  den <- integrate(g,-Inf,Inf,rel.tol=1e-13,abs.tol=0,subdivisions=2000L)$value
  num <- integrate(function(a) a*g(a),-Inf,Inf,rel.tol=1e-13,abs.tol=0,subdivisions=2000L)$value
  est <- num/den; pt <- p(est,xs)
  t <- NA; list(est=est,ptox=pt)
}
f <- function(v) paste(sprintf("%.17g",v),collapse=";")
rows <- list()
for (cs in cases) for (m in c("empiric","logistic")) {
  r <- crm(cs[[2]],cs[[3]],cs[[5]],cs[[4]],model=m,var.est=TRUE)
  h <- hp(cs[[2]],cs[[5]],cs[[4]],m)
  tg <- cs[[3]]; pt <- h$ptox
  mtdhp <- if (all(pt<=tg)) length(pt) else if (all(pt>=tg)) 1 else order(abs(pt-tg))[1]
  rows[[length(rows)+1]] <- data.frame(case=cs[[1]],model=m,skeleton=f(cs[[2]]),target=tg,
     levels=paste(cs[[4]],collapse=";"),tox=paste(cs[[5]],collapse=";"),
     beta_mean=sprintf("%.17g",r$estimate),ptox=f(r$ptox),mtd=r$mtd,
     post_var=formatC(r$post.var,digits=10,format="g"),
     beta_mean_hp=sprintf("%.17g",h$est),ptox_hp=f(h$ptox),mtd_hp=mtdhp,
     rel_diff=formatC(abs(r$estimate-h$est)/max(1e-300,abs(h$est)),digits=3,format="g"))
}
out <- do.call(rbind,rows)
write.csv(out,"/tmp/notes/dfcrm_ref.csv",row.names=FALSE,quote=TRUE)
print(out[,c("case","model","beta_mean","beta_mean_hp","rel_diff","mtd","mtd_hp")])
