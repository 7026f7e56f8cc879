// mqtt-packet (under both the MQTT client and the embedded broker) builds a table of 65 536
// two-byte Buffers on its first packet: 6 MB of small objects that every full garbage
// collection walks for the daemon's lifetime, for a few packets a second. Numbers are written
// on the fly instead. Imported for its effect, before the first packet is built.
import mqttPacket from 'mqtt-packet';

mqttPacket.writeToStream.cacheNumbers = false;
