#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/<target>/corpus/ (committed; run
from tests/fuzz/ to write them again). Frames are protobuf encoded by hand
from proto/levee.proto's field numbers; each target's input layout is in its
source file."""
import os, struct
def varint(n):
    out=b''
    while True:
        b=n&0x7f; n>>=7
        if n: out+=bytes([b|0x80])
        else: return out+bytes([b])
def f_var(no,v): return varint(no<<3|0)+varint(v)
def f_len(no,b):
    if isinstance(b,str): b=b.encode()
    return varint(no<<3|2)+varint(len(b))+b
def frame(rid, no, body): 
    p=f_var(1,rid)+f_len(no,body)
    return struct.pack('>I',len(p))+p
def w(path,data):
    os.makedirs(os.path.dirname(path),exist_ok=True)
    open(path,'wb').write(data)
hello=frame(1,10,f_var(1,1)+f_len(2,'ngx')+f_var(3,7))
batch=frame(2,14,f_var(1,30000)+f_len(2,f_len(1,'alice')+f_len(2,'lobby')+f_var(3,1700000000000))+f_len(2,f_len(1,'bob')+f_var(3,1)))
query=frame(3,16,f_len(1,'alice')+f_len(1,'bob'))
room=frame(4,16,f_len(2,'lobby')+f_var(3,10))
lease=frame(5,20,f_len(1,f_len(1,'z')+f_len(2,'1.2.3.4')+f_var(3,1000)+f_var(4,11)+f_var(5,5)))
reg=frame(6,30,f_var(1,60000)+f_len(2,f_len(1,'k')+f_len(2,'10.0.0.7:8080')))
probe=frame(7,12,f_len(1,'k')+f_len(2,'v'))
d='frame_dispatch/corpus/'
w(d+'presence_batch',batch); w(d+'presence_query',query); w(d+'room_query',room)
w(d+'limit_lease',lease); w(d+'registry_batch',reg); w(d+'probe',probe)
w(d+'all_requests',batch+query+room+lease+reg+probe)
w(d+'second_hello',hello)
w(d+'reply_type',frame(8,15,f_var(1,1)))
# split_reads: [n][n x u16][stream]
d='split_reads/corpus/'
def split(lengths, stream): return bytes([len(lengths)])+b''.join(struct.pack('<H',l) for l in lengths)+stream
w(d+'byte_by_byte',split([1]*15, hello+batch))
w(d+'header_split',split([2,3,4],hello+query+reg))
w(d+'whole',split([],hello+lease))
w(d+'truncated',split([5],(hello+batch)[:-3]))
w(d+'oversize',split([1],b'\x00\x01\x00\x00'+b'x'*8))
w(d+'zero_length',split([3],hello+b'\x00\x00\x00\x00'))
w(d+'garbage',split([2],struct.pack('>I',5)+b'\xff\xff\xff\xff\xff'))
# spool_recovery: [flags][n x u16 lengths][segments][checkpoint]
import zlib
def payload(user,room,ms):
    u=user.encode(); r=room.encode()
    return struct.pack('>H',len(u))+u+struct.pack('>H',len(r))+r+struct.pack('>Q',ms)
def rec(p): return struct.pack('>II',len(p),zlib.crc32(p))+p
d='spool_recovery/corpus/'
def spool(segs, checkpoint=None):
    flags=len(segs)|(4 if checkpoint is not None else 0)
    return bytes([flags])+b''.join(struct.pack('<H',len(s)) for s in segs)+b''.join(segs)+(checkpoint or b'')
r1=rec(payload('alice','lobby',1)); r2=rec(payload('bob','',2))
w(d+'one_segment',spool([r1+r2]))
w(d+'torn_tail',spool([r1+r2[:-4]]))
w(d+'bad_crc',spool([r1[:5]+b'\x00'+r1[6:]+r2]))
w(d+'two_segments_checkpoint',spool([r1,r2],b'2 0\n'))
w(d+'checkpoint_past_end',spool([r1],b'1 9999\n'))
w(d+'empty',spool([]))
# cluster_slots: RESP as a node sends it
def bulk(s): s=s.encode() if isinstance(s,str) else s; return b'$%d\r\n%s\r\n'%(len(s),s)
def arr(*xs): return b'*%d\r\n'%len(xs)+b''.join(xs)
def i(n): return b':%d\r\n'%n
d='cluster_slots/corpus/'
slots=arr(arr(i(0),i(5460),arr(bulk('127.0.0.1'),i(7000),bulk('id0')),arr(bulk('127.0.0.1'),i(7003),bulk('id3'))),
          arr(i(5461),i(10922),arr(bulk('127.0.0.1'),i(7001),bulk('id1'))),
          arr(i(10923),i(16383),arr(bulk('127.0.0.1'),i(7002),bulk('id2'))))
w(d+'three_masters',slots)
w(d+'unknown_host',arr(arr(i(0),i(16383),arr(bulk('?'),i(7000)))))
w(d+'empty_host',arr(arr(i(0),i(100),arr(bulk(''),i(7000)))))
w(d+'ipv6',arr(arr(i(0),i(16383),arr(bulk('::1'),i(7000)))))
w(d+'moved',b'-MOVED 3999 127.0.0.1:6381\r\n')
w(d+'ask',b'-ASK 16383 [::1]:7002\r\n')
w(d+'moved_port_only',b'-MOVED 0 :7005\r\n')
w(d+'slots_then_moved',slots+b'-MOVED 12000 127.0.0.1:7000\r\n')
w(d+'overlap',arr(arr(i(0),i(100),arr(bulk('a'),i(1))),arr(i(50),i(200),arr(bulk('b'),i(2)))))
# directive_params: [parser][value]
d='directive_params/corpus/'
w(d+'rate_burst',b'\x00100r/s 50'); w(d+'rate_day',b'\x001r/d 1000000'); w(d+'rate_max',b'\x001000000r/s')
w(d+'count',b'\x01999'); w(d+'count_over',b'\x01100000000000000000000')
w(d+'sidecar',b'\x02unix:/run/levee/leveed.sock'); w(d+'sidecar_relative',b'\x02unix:leveed.sock')
w(d+'method',b'\x03maglev'); w(d+'load_factor',b'\x041.25'); w(d+'load_factor_max',b'\x04100.000')
w(d+'key',b'\x05alice'); w(d+'key_empty',b'\x85')
# config: leveed.conf as written by hand
import shutil
d='config/corpus/'
shutil.copy('../../conf/leveed.conf', d+'shipped')
w(d+'cluster',b'socket /tmp/l.sock\nredis 127.0.0.1:7000, [::1]:7001\nredis_password se cret\nmongo mongodb://127.0.0.1:27017/\nspool_dir /tmp/spool\nspool_fsync always\nspool_max_bytes 1048576\nmax_frame_bytes 65536\npresence_buckets 64\n')
w(d+'standalone',b'socket /tmp/l.sock\nlog_level debug\nsocket_mode 0600\n')
w(d+'errors',b'unknown_key 1\nsocket\npresence_buckets -3\nmax_frame_bytes 99999999999999999999\nredis_password a#b\nsocket /a\nsocket /b\n\tlog_level\t loud\n')
