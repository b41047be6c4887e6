//! ironlb-controller: assigns external IPs from IPAddressPools to LoadBalancer Services.
