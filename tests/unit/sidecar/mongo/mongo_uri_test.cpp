#include "mongo_uri.hpp"

#include <gtest/gtest.h>

using levee::redact_mongo_uri;

TEST(MongoUri, HidesThePasswordKeepsTheRest) {
    EXPECT_EQ(redact_mongo_uri("mongodb://app:s3cret@db1:27017,db2:27017/levee?replicaSet=rs0"),
              "mongodb://app:***@db1:27017,db2:27017/levee?replicaSet=rs0");
    EXPECT_EQ(redact_mongo_uri("mongodb+srv://app:p@ss@cluster.example/levee"),
              "mongodb+srv://app:***@cluster.example/levee");
}

TEST(MongoUri, NothingToHide) {
    EXPECT_EQ(redact_mongo_uri("mongodb://127.0.0.1:27017/?directConnection=true"),
              "mongodb://127.0.0.1:27017/?directConnection=true");
    EXPECT_EQ(redact_mongo_uri("mongodb://app@db1/levee?authMechanism=MONGODB-X509"),
              "mongodb://app@db1/levee?authMechanism=MONGODB-X509");
    EXPECT_EQ(redact_mongo_uri("not a uri"), "not a uri");
}
