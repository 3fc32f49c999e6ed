// Read bandwidth of the cache level a buffer of `MB` megabytes falls in: `threads` threads each summing their
// share `reps` times with AVX-512 loads (best of 5). Used to show where the streaming configurations stop:
//   l3_read MB threads reps      e.g. l3_read 16 2 20
//   clang -O2 -pthread Scripts/kernel_bench/l3_read.c -o /tmp/l3_read
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static long n; static int reps; static float *buf[8]; static float sink[8];
__attribute__((target("avx512f")))
static void *run(void *arg){ long id=(long)arg; float*p=buf[id]; __m512 a0=_mm512_setzero_ps(),a1=a0,a2=a0,a3=a0;
  for(int r=0;r<reps;r++){ __asm__ volatile("" ::: "memory"); for(long i=0;i<n;i+=64){a0=_mm512_add_ps(a0,_mm512_load_ps(p+i));a1=_mm512_add_ps(a1,_mm512_load_ps(p+i+16));a2=_mm512_add_ps(a2,_mm512_load_ps(p+i+32));a3=_mm512_add_ps(a3,_mm512_load_ps(p+i+48));}}
  sink[id]=_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0,a1),_mm512_add_ps(a2,a3))); return 0;}
int main(int c,char**v){ double mb=atof(v[1]); int th=atoi(v[2]); reps=atoi(v[3]); n=(long)(mb*1024*1024/4/th)/64*64;
  for(int t=0;t<th;t++){buf[t]=aligned_alloc(64,n*4); for(long i=0;i<n;i++)buf[t][i]=1;}
  pthread_t ts[8]; double best=1e9;
  for(int k=0;k<5;k++){double s=now(); for(long t=0;t<th;t++)pthread_create(&ts[t],0,run,(void*)t); for(int t=0;t<th;t++)pthread_join(ts[t],0); double e=now()-s; if(e<best)best=e;}
  printf("%g %.1f MB total, %d threads: %.1f GB/s\n",sink[0],mb,th,(double)n*4*th*reps/best/1e9);}
